//! `posterior.v1.Optimizer` over gRPC: each handler decodes, calls
//! [`crate::app::Studies`], encodes.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::app::App;
use crate::app::page::PageRequest;
use crate::bo::StudyDef;
use crate::pb;
use crate::pb::optimizer_server::Optimizer;

/// The gRPC face of the study use cases.
pub struct OptimizerGrpc {
    app: Arc<App>,
}

impl OptimizerGrpc {
    pub fn new(app: Arc<App>) -> Self {
        OptimizerGrpc { app }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Optimizer for OptimizerGrpc {
    async fn create_study(
        &self,
        req: Request<pb::CreateStudyRequest>,
    ) -> Answer<pb::CreateStudyResponse> {
        let def: StudyDef = req.into_inner().try_into()?;
        Ok(Response::new(self.app.studies.create(def).await?.into()))
    }

    async fn get_study(&self, req: Request<pb::GetStudyRequest>) -> Answer<pb::GetStudyResponse> {
        let view = self.app.studies.get(&req.get_ref().name).await?;
        Ok(Response::new(view.into()))
    }

    async fn list_studies(
        &self,
        req: Request<pb::ListStudiesRequest>,
    ) -> Answer<pb::ListStudiesResponse> {
        let page = PageRequest::try_from(req.get_ref())?;
        Ok(Response::new(self.app.studies.list(&page).await?.into()))
    }

    async fn delete_study(
        &self,
        req: Request<pb::DeleteStudyRequest>,
    ) -> Answer<pb::DeleteStudyResponse> {
        self.app.studies.delete(&req.get_ref().name).await?;
        Ok(Response::new(pb::DeleteStudyResponse {}))
    }

    async fn suggest(&self, req: Request<pb::SuggestRequest>) -> Answer<pb::SuggestResponse> {
        let r = req.get_ref();
        let trials = self.app.studies.suggest(&r.study, r.count).await?;
        Ok(Response::new(trials.into()))
    }

    async fn observe(&self, req: Request<pb::ObserveRequest>) -> Answer<pb::ObserveResponse> {
        let trial = self.app.studies.observe(req.into_inner().into()).await?;
        Ok(Response::new(trial.into()))
    }

    async fn get_study_slices(
        &self,
        req: Request<pb::GetStudySlicesRequest>,
    ) -> Answer<pb::GetStudySlicesResponse> {
        let r = req.get_ref();
        let view = self.app.studies.slices(&r.name, r.points).await?;
        Ok(Response::new(view.into()))
    }
}
