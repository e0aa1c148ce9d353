//! `posterior.v1.Bandits` over gRPC: each handler decodes, calls
//! [`crate::app::Bandits`], encodes.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::app::App;
use crate::app::page::PageRequest;
use crate::pb;
use crate::pb::bandits_server::Bandits;

/// The gRPC face of the bandit use cases.
pub struct BanditsGrpc {
    app: Arc<App>,
}

impl BanditsGrpc {
    pub fn new(app: Arc<App>) -> Self {
        BanditsGrpc { app }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Bandits for BanditsGrpc {
    async fn create_experiment(
        &self,
        req: Request<pb::CreateExperimentRequest>,
    ) -> Answer<pb::CreateExperimentResponse> {
        let new = req.into_inner().try_into()?;
        Ok(Response::new(self.app.bandits.create(new).await?.into()))
    }

    async fn get_experiment(
        &self,
        req: Request<pb::GetExperimentRequest>,
    ) -> Answer<pb::GetExperimentResponse> {
        let r = req.into_inner();
        let summary = self.app.bandits.summary(&r.name, r.threshold).await?;
        Ok(Response::new(summary.into()))
    }

    async fn list_experiments(
        &self,
        req: Request<pb::ListExperimentsRequest>,
    ) -> Answer<pb::ListExperimentsResponse> {
        let page = PageRequest::try_from(req.get_ref())?;
        Ok(Response::new(
            self.app.bandits.list_detailed(&page).await?.into(),
        ))
    }

    async fn delete_experiment(
        &self,
        req: Request<pb::DeleteExperimentRequest>,
    ) -> Answer<pb::DeleteExperimentResponse> {
        self.app.bandits.delete(&req.into_inner().name).await?;
        Ok(Response::new(pb::DeleteExperimentResponse {}))
    }

    async fn add_arm(&self, req: Request<pb::AddArmRequest>) -> Answer<pb::AddArmResponse> {
        let r = req.into_inner();
        let out = self.app.bandits.add_arm(&r.experiment, &r.arm).await?;
        Ok(Response::new(out.into()))
    }

    async fn retire_arm(
        &self,
        req: Request<pb::RetireArmRequest>,
    ) -> Answer<pb::RetireArmResponse> {
        let r = req.into_inner();
        let def = self.app.bandits.retire_arm(&r.experiment, &r.arm).await?;
        Ok(Response::new(def.into()))
    }

    async fn choose(&self, req: Request<pb::ChooseRequest>) -> Answer<pb::ChooseResponse> {
        let r = req.get_ref();
        let choice = self
            .app
            .bandits
            .choose(&r.experiment, &r.eligible_arms, &r.unit_id)
            .await?;
        Ok(Response::new(choice.into()))
    }

    async fn reward(&self, req: Request<pb::RewardRequest>) -> Answer<pb::RewardResponse> {
        let reward = req.into_inner().try_into()?;
        Ok(Response::new(
            self.app.bandits.reward(&reward).await?.into(),
        ))
    }

    async fn reward_aggregate(
        &self,
        _req: Request<pb::RewardAggregateRequest>,
    ) -> Answer<pb::RewardAggregateResponse> {
        Err(Status::unimplemented("RewardAggregate: not built yet"))
    }

    async fn reward_batch(
        &self,
        _req: Request<pb::RewardBatchRequest>,
    ) -> Answer<pb::RewardBatchResponse> {
        Err(Status::unimplemented("RewardBatch: not built yet"))
    }

    async fn get_verdict(
        &self,
        req: Request<pb::GetVerdictRequest>,
    ) -> Answer<pb::GetVerdictResponse> {
        let v = self.app.bandits.verdict(&req.get_ref().name).await?;
        Ok(Response::new(v.into()))
    }

    async fn gate(&self, req: Request<pb::GateRequest>) -> Answer<pb::GateResponse> {
        let g = self.app.bandits.gate(&req.into_inner().into()).await?;
        Ok(Response::new(g.into()))
    }

    async fn get_experiment_history(
        &self,
        req: Request<pb::GetExperimentHistoryRequest>,
    ) -> Answer<pb::GetExperimentHistoryResponse> {
        let r = req.get_ref();
        let points = self.app.bandits.history(&r.name, r.since_ms).await?;
        Ok(Response::new(points.into()))
    }
}
